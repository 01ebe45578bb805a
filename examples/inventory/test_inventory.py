from inventory import restock_list, total_units


def test_total_units():
    assert total_units({"apples": 3, "pears": 10}) == 13


def test_items_at_the_minimum_are_restocked():
    assert restock_list({"apples": 3, "pears": 10, "plums": 5}, 5) == ["apples", "plums"]


def test_nothing_to_restock():
    assert restock_list({"apples": 30, "pears": 12}, 5) == []
