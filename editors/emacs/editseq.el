;;; editseq.el --- Eglot client for the editseq language server  -*- lexical-binding: t; -*-

;; Copyright (C) 2025 the editseq authors

;; Author: the editseq authors
;; Version: 0.1.0
;; Package-Requires: ((emacs "29.1"))
;; Keywords: languages, tools, convenience
;; URL: https://github.com/editseq/editseq

;; This file is not part of GNU Emacs.

;;; Commentary:

;; Registers `editseq serve' with Eglot (built into Emacs 29+) for
;; `python-mode' and `python-ts-mode', so `M-x eglot' (or `eglot-ensure')
;; starts it there.  The server's model-proposed, test-verified diffs then
;; arrive as ordinary code actions (`M-x eglot-code-actions'): "editseq:
;; write NAME edit by edit", "editseq: refine NAME until tests pass", and on a
;; failing-test diagnostic "editseq: fix TEST"; a finished run is offered step
;; by step.  Failing tests from `pytest --editseq' show up in Flymake.
;;
;; Eglot runs one server per major mode: with this package loaded, Python
;; buffers get editseq instead of pylsp/pyright (unload it, or remove its
;; entry from `eglot-server-programs', to switch back).
;;
;; Commands: `editseq-write' and `editseq-refine' run on the function at
;; point without blocking Emacs (progress in the mode line, the result in the
;; echo area, then its steps in `eglot-code-actions'); `editseq-cancel' stops
;; the runs in flight; `editseq-status' shows the model's state.
;;
;; Setup:
;;
;;   (add-to-list 'load-path "/path/to/editseq/editors/emacs")
;;   (require 'editseq)
;;   (setq editseq-initialization-options '(:model "embedded" :device "cpu"))
;;   (add-hook 'python-mode-hook #'eglot-ensure)

;;; Code:

(require 'cl-lib)
(require 'eglot)
(require 'jsonrpc)

(defgroup editseq nil
  "Model-proposed, test-verified edits through Eglot."
  :group 'eglot
  :prefix "editseq-")

(defcustom editseq-server-command '("editseq" "serve")
  "Command line that starts the editseq language server (stdio).
For a virtualenv, e.g. (\"/path/to/venv/bin/python\" \"-m\"
\"model_runtime.cli\" \"serve\")."
  :type '(repeat string))

(defcustom editseq-initialization-options nil
  "Server settings sent as `initializationOptions', a plist.
E.g. (:model \"embedded\" :device \"cpu\" :rounds 4 :resolveTimeout 4.0);
the names are the server's settings (see the editseq README).  The
trust flag is `editseq-trusted-workspace', not this."
  :type '(plist :key-type symbol :value-type sexp))

(defcustom editseq-trusted-workspace nil
  "Non-nil: the workspace's pyproject.toml may choose what runs.
Sent as `initializationOptions.trustedWorkspace'.  Only then does the
server take `model', `backend', `endpoint', `python' and `testCommand'
from `[tool.editseq]' in the workspace's pyproject.toml."
  :type 'boolean)
(put 'editseq-trusted-workspace 'risky-local-variable t)

(defcustom editseq-modes '(python-mode python-ts-mode)
  "Major modes whose buffers Eglot hands to editseq (set before loading)."
  :type '(repeat symbol))

(defvar editseq-run-finished-functions nil
  "Abnormal hook run when a run ends, with RESULT and ERROR.
RESULT is the server's answer (a plist with :run :steps :verified
:passed :total :summary), or nil when ERROR (a JSON-RPC error plist)
says why not.")

(defclass editseq-server (eglot-lsp-server)
  ((status :initform nil :accessor editseq-server-status
           :documentation "The last `editseq/status' state, a string."))
  :documentation "An Eglot connection to the editseq language server.")

(defun editseq--contact (&rest _)
  "The `eglot-server-programs' contact for editseq."
  (cons 'editseq-server editseq-server-command))

(cl-defmethod eglot-initialization-options ((_server editseq-server))
  "The server settings, with the workspace's trust."
  `(:trustedWorkspace ,(if editseq-trusted-workspace t :json-false)
    ,@editseq-initialization-options))

(cl-defmethod eglot-handle-notification
  ((server editseq-server) (_method (eql editseq/status)) &key state &allow-other-keys)
  "Remember the model's STATE on SERVER (errors also come as a message)."
  (setf (editseq-server-status server) state))

;;; Runs: `workspace/executeCommand' without blocking Emacs

(defconst editseq--run-commands '("editseq.write" "editseq.refine")
  "The server's commands that run the model and the tests.")

(defvar editseq--pending nil
  "Runs in flight: a list of (ID . SERVER).")

(defun editseq--run-async (server command arguments)
  "Ask SERVER to execute COMMAND with ARGUMENTS without waiting.
A run takes seconds to minutes, longer than `jsonrpc-request' waits
\(`jsonrpc-default-request-timeout'), so the answer is handled when it
comes: by the echo area and `editseq-run-finished-functions'."
  (when eglot--managed-mode (eglot--signal-textDocument/didChange))
  (let (id)
    (cl-flet ((done (result err)
                (setq editseq--pending (cl-remove id editseq--pending :key #'car))
                (cond ((eql (plist-get err :code) -32800) (message "editseq: run cancelled"))
                      (err (message "%s" (plist-get err :message)))
                      ;; With steps, the server says so itself (window/showMessage).
                      ((eql (plist-get result :steps) 0)
                       (message "editseq: %s: nothing to apply" (plist-get result :summary))))
                (run-hook-with-args 'editseq-run-finished-functions result err)))
      (setq id (or (car-safe (jsonrpc-async-request
                              server :workspace/executeCommand
                              `(:command ,command :arguments ,arguments)
                              :timeout nil
                              :success-fn (lambda (result) (done result nil))
                              :error-fn (lambda (err) (done nil err))))
                   ;; jsonrpc 1.0.25 (Emacs 30) returns nil: the id is the last one taken.
                   (jsonrpc--next-request-id server)))
      (push (cons id server) editseq--pending)
      id)))

(when (fboundp 'eglot-execute)           ; Emacs 30
  (cl-defmethod eglot-execute ((server editseq-server) action)
    "Run editseq's long commands asynchronously; anything else as Eglot does.
ACTION is what `eglot-execute' takes (a code action that resolves to
a command comes back here with that command)."
    (let ((command (plist-get action :command)))
      (if (member command editseq--run-commands)
          (editseq--run-async server command (plist-get action :arguments))
        (cl-call-next-method)))))

(with-no-warnings                       ; Emacs 29's API, obsolete in 30
  (cl-defmethod eglot-execute-command ((server editseq-server) command arguments)
    "Run editseq's long COMMAND with ARGUMENTS asynchronously (Emacs 29)."
    (if (member (format "%s" command) editseq--run-commands)
        (editseq--run-async server (format "%s" command) arguments)
      (cl-call-next-method))))

(defun editseq--server ()
  "The editseq server of the current buffer, or a `user-error'."
  (let ((server (eglot-current-server)))
    (unless (cl-typep server 'editseq-server)
      (user-error "This buffer is not managed by editseq (M-x eglot starts it)"))
    server))

(defun editseq--execute (command &rest tests)
  "Run the server's COMMAND on the function at point.
TESTS, if any, are pytest ids to run it against."
  (let ((server (editseq--server))
        (arguments `[,(plist-get (eglot--TextDocumentIdentifier) :uri)
                     (:line ,(1- (line-number-at-pos nil t)) :character 0)
                     ,@tests]))
    (if (fboundp 'eglot-execute)
        (eglot-execute server `(:command ,command :arguments ,arguments))
      (with-no-warnings (eglot-execute-command server command arguments)))))

(defun editseq-write ()
  "Write the function at point (docstring, empty body) edit by edit."
  (interactive)
  (editseq--execute "editseq.write")
  (message "editseq: writing... (M-x editseq-cancel stops it)"))

(defun editseq-refine (&optional tests)
  "Refine the function at point until it is green.
Its tests are the failing ones from `pytest --editseq', or the
server's `testCommand'; with a prefix argument, read TESTS (pytest
ids separated by spaces)."
  (interactive
   (list (and current-prefix-arg (split-string (read-string "Tests: ")))))
  (apply #'editseq--execute "editseq.refine" tests)
  (message "editseq: refining... (M-x editseq-cancel stops it)"))

(defun editseq-cancel ()
  "Stop every editseq run in flight, the model and the test processes."
  (interactive)
  (if (null editseq--pending)
      (message "editseq: nothing is running")
    (pcase-dolist (`(,id . ,server) editseq--pending)
      (when (jsonrpc-running-p server)
        (jsonrpc-notify server :$/cancelRequest `(:id ,id))))))

(defun editseq-status ()
  "Show the state of the model of the current buffer's editseq server."
  (interactive)
  (message "editseq: %s" (or (editseq-server-status (editseq--server)) "no status yet")))

(add-to-list 'eglot-server-programs (cons editseq-modes #'editseq--contact))

(provide 'editseq)
;;; editseq.el ends here
