;;; e2e.el --- End-to-end driver for tests/editors/test_eglot.py  -*- lexical-binding: t; -*-

;;; Commentary:

;; emacs --batch -Q -l editors/emacs/tests/e2e.el -- FILE OUT.json
;;
;; Environment: EDITSEQ_EMACS_PACKAGE (the folder of editseq.el), EDITSEQ_CMD and
;; EDITSEQ_SETTINGS (JSON: the server's command line, its initializationOptions),
;; EDITSEQ_PYTHON (the interpreter that runs pytest), EDITSEQ_WRITE_LINE,
;; EDITSEQ_REFINE_LINE and EDITSEQ_FIX_LINE (1-based lines: in the function to
;; write, in the failing function to refine with the command, on the failing
;; function whose diagnostic gets the quick fix), EDITSEQ_TIMEOUT (seconds for
;; the whole driver).
;;
;; One Eglot session on FILE, against the real server, in a workspace whose two
;; tests fail: lists the code actions; runs `editseq-write' and stops it with
;; `editseq-cancel' as its $/progress begins; runs `pytest --editseq' and waits
;; for the two Flymake diagnostics; runs `editseq-refine' (a command with
;; $/progress that does not block Emacs) and resolves and applies the last step
;; it offers; resolves the "fix" quick fix of the other diagnostic (the run
;; happens inside codeAction/resolve) and lets Eglot apply it; saves, runs pytest
;; again and waits for the diagnostics to clear.  What happened goes to OUT.json
;; (the assertions are in Python).  Every wait is bounded, a timer kills Emacs
;; after EDITSEQ_TIMEOUT seconds, and any error exits non-zero (the report then
;; names it, with the tail of the JSON-RPC traffic).

;;; Code:

(require 'cl-lib)
(require 'json)

(defvar e2e-file (expand-file-name (nth 1 command-line-args-left)))
(defvar e2e-out (expand-file-name (nth 2 command-line-args-left)))
(setq command-line-args-left nil)       ; not files for Emacs to visit
(defvar e2e-report nil "The report: an alist of (KEY . JSON-VALUE), newest first.")
(defvar e2e-progress nil "Every $/progress value seen, newest first.")
(defvar e2e-messages nil "Every window/showMessage, newest first.")
(defvar e2e-applied nil "Every workspace edit Eglot applied, newest first.")
(defvar e2e-statuses nil "Every editseq/status state, newest first.")
(defvar e2e-run-done nil "(RESULT . ERROR) once a run has finished.")

(defun e2e-env (name &optional default)
  (let ((value (getenv name)))
    (if (and value (not (string-empty-p value))) value default)))

(defun e2e-put (key value)
  (setf (alist-get key e2e-report) value))

(defun e2e-save ()
  (with-temp-file e2e-out
    (setq buffer-file-coding-system 'utf-8-unix)
    (let ((json (json-serialize
                 `((progress . ,(vconcat (reverse e2e-progress)))
                   (messages . ,(vconcat (reverse e2e-messages)))
                   (applied_edits . ,(vconcat (reverse e2e-applied)))
                   (statuses . ,(vconcat (reverse e2e-statuses)))
                   ,@(reverse e2e-report))
                 :null-object nil :false-object :json-false)))
      (insert (if (multibyte-string-p json) json (decode-coding-string json 'utf-8))))))

(defun e2e-put-events ()
  "Record the tail of the JSON-RPC traffic (eglot's events buffer)."
  (ignore-errors
    (with-current-buffer (jsonrpc-events-buffer (eglot-current-server))
      (e2e-put 'events (concat (mapcar (lambda (c) (if (or (> c #x10ffff) (<= #xd800 c #xdfff)) ?? c))
                                       (buffer-substring-no-properties
                                        (max (point-min) (- (point-max) 30000)) (point-max))))))))

(defun e2e-fail (what)
  "Record WHAT (and the tail of the server's traffic), save, exit non-zero."
  (e2e-put 'error what)
  (e2e-put-events)
  (ignore-errors (e2e-save))
  (message "e2e.el FAILED: %s" what)
  (kill-emacs 1))

;; A hard limit on the whole run: whatever hangs, Emacs exits.
(run-at-time (string-to-number (e2e-env "EDITSEQ_TIMEOUT" "120")) nil
             (lambda () (e2e-fail "hard timeout: the driver ran out of time")))

(defun e2e-wait (seconds what predicate &optional poll)
  "Process output until PREDICATE is non-nil; an error after SECONDS.
POLL, if given, is called on every turn (e.g. to start Flymake)."
  (let ((deadline (+ (float-time) seconds)) value)
    (while (not (setq value (funcall predicate)))
      (when (> (float-time) deadline)
        (error "Timed out after %ss waiting for %s" seconds what))
      (when poll (funcall poll))
      (accept-process-output nil 0.05))
    value))

(defun e2e-text ()
  (save-restriction (widen) (buffer-substring-no-properties (point-min) (point-max))))

(defun e2e-goto-line (line)
  (goto-char (point-min))
  (forward-line (1- line))
  (back-to-indentation))

(defun e2e-code-actions ()
  "The code actions at point, as `M-x eglot-code-actions' asks for them."
  (apply #'eglot-code-actions (append (eglot--code-action-bounds) '(nil nil))))

(defun e2e-titles (actions)
  (vconcat (mapcar (lambda (a) (plist-get a :title)) actions)))

(defun e2e-kinds (actions)
  (vconcat (mapcar (lambda (a) (plist-get a :kind)) actions)))

(defun e2e-line (variable)
  (string-to-number (e2e-env variable)))

(defun e2e-progress-of (kind)
  "Whether a $/progress of KIND (\"begin\", \"end\") has been seen."
  (cl-find kind e2e-progress :key (lambda (p) (alist-get 'kind p)) :test #'equal))

(defun e2e-action (actions title-regexp)
  (or (cl-find-if (lambda (a) (string-match-p title-regexp (plist-get a :title))) actions)
      (error "No code action matching %S among %S" title-regexp (e2e-titles actions))))

(defun e2e-resolve-and-apply (action)
  "Resolve ACTION (codeAction/resolve) and let Eglot apply it; the resolved action.
The request waits up to 30 s, not Eglot's 10 s: with the test's
resolveTimeout (20 s) a run on a slow machine still ends inside the
resolve."
  (let ((resolved (jsonrpc-request (eglot--current-server-or-lose) :codeAction/resolve action
                                   :timeout 30)))
    (eglot-execute (eglot--current-server-or-lose) resolved)
    resolved))

(defun e2e-pytest (what)
  "Run `python -m pytest --editseq' in the workspace; its exit status and output."
  (let* ((buffer (generate-new-buffer (format " *pytest %s*" what)))
         (process (make-process
                   :name "pytest" :buffer buffer :noquery t :connection-type 'pipe
                   :command (list (e2e-env "EDITSEQ_PYTHON" "python3") "-m" "pytest" "--editseq"
                                  "-q" "-p" "no:cacheprovider"))))
    (e2e-wait 60 (format "pytest (%s)" what) (lambda () (not (process-live-p process))))
    `((exit . ,(process-exit-status process))
      (output . ,(with-current-buffer buffer (buffer-string))))))

(defun e2e-pytest-diagnostics ()
  "The Flymake diagnostics in the buffer that come from the server's pytest report."
  (cl-remove-if-not (lambda (d) (string-prefix-p "pytest" (flymake-diagnostic-text d)))
                    (flymake-diagnostics)))

(defun e2e-diagnostic-json (d)
  `((line . ,(line-number-at-pos (flymake-diagnostic-beg d)))
    (type . ,(symbol-name (flymake-diagnostic-type d)))
    (text . ,(flymake-diagnostic-text d))))

(defun e2e-main ()
  (set-language-environment "UTF-8")    ; as a user's Emacs would read and save the file
  (add-to-list 'load-path (e2e-env "EDITSEQ_EMACS_PACKAGE"))
  (require 'editseq)
  (e2e-put 'emacs_version emacs-version)
  (e2e-put 'registered (and (assoc editseq-modes eglot-server-programs) t))
  (setq editseq-server-command (append (json-parse-string (e2e-env "EDITSEQ_CMD")) nil)
        editseq-initialization-options (json-parse-string (e2e-env "EDITSEQ_SETTINGS" "{}")
                                                          :object-type 'plist))
  ;; Record what the user would see and what Eglot applies.
  (cl-defmethod eglot-handle-notification :before
    (_server (_method (eql $/progress)) &key token value &allow-other-keys)
    (push `((token . ,token) ,@(cl-loop for (k v) on value by #'cddr
                                        collect (cons (intern (substring (symbol-name k) 1)) v)))
          e2e-progress))
  (cl-defmethod eglot-handle-notification :before
    (_server (_method (eql window/showMessage)) &key type message &allow-other-keys)
    (push `((type . ,type) (message . ,message)) e2e-messages))
  (cl-defmethod eglot-handle-notification :before
    (_server (_method (eql editseq/status)) &key state &allow-other-keys)
    (push state e2e-statuses))
  (advice-add 'eglot--apply-workspace-edit :before
              (lambda (edit &rest _) (push edit e2e-applied)))
  (add-hook 'editseq-run-finished-functions
            (lambda (result error) (setq e2e-run-done (cons result error))))

  ;; Open the file and start Eglot the way `eglot-ensure' does (the package's contact).
  (find-file e2e-file)
  (e2e-put 'major_mode (symbol-name major-mode))
  (e2e-put 'before (e2e-text))
  (let ((started (float-time)))
    (apply #'eglot (eglot--guess-contact))
    (e2e-wait 30 "eglot to connect" (lambda () (and (eglot-current-server) eglot--managed-mode)))
    (e2e-put 'connect_seconds (- (float-time) started)))
  (let ((server (eglot-current-server)))
    (e2e-put 'server_class (symbol-name (eieio-object-class server)))
    (e2e-put 'server_info (eglot--server-info server))
    (e2e-put 'position_encoding (eglot-server-capable :positionEncoding))
    (e2e-put 'code_action_provider (eglot-server-capable :codeActionProvider))
    (e2e-put 'commands (eglot-server-capable :executeCommandProvider :commands))
    (e2e-put 'init_options (eglot-initialization-options server))
    (e2e-put 'root (project-root (eglot--project server))))

  ;; (a) The code actions: write at the docstring-only function; nothing yet at the function under
  ;; test (no tests are known before pytest has run).
  (e2e-goto-line (e2e-line "EDITSEQ_REFINE_LINE"))
  (e2e-put 'refine_titles_before (e2e-titles (e2e-code-actions)))
  (e2e-goto-line (e2e-line "EDITSEQ_WRITE_LINE"))
  (let ((actions (e2e-code-actions)))
    (e2e-put 'write_titles (e2e-titles actions))
    (e2e-put 'write_kinds (e2e-kinds actions)))

  ;; M-x editseq-write, stopped with M-x editseq-cancel as soon as its progress begins.
  (let ((text (e2e-text)))
    (editseq-write)
    (e2e-put 'pending_after_write (length editseq--pending))
    (e2e-wait 30 "the write's progress to begin" (lambda () (e2e-progress-of "begin")))
    (editseq-cancel)
    (e2e-wait 30 "the cancelled write to settle" (lambda () e2e-run-done))
    (e2e-put 'cancelled_result (car e2e-run-done))
    (e2e-put 'cancelled_error (cdr e2e-run-done))
    (e2e-wait 30 "the cancelled write's progress to end" (lambda () (e2e-progress-of "end")))
    (e2e-put 'cancelled_progress (vconcat (reverse e2e-progress)))
    (e2e-put 'cancelled_unchanged (equal text (e2e-text)))
    (e2e-put 'pending_after_cancel (length editseq--pending))
    (when (getenv "EDITSEQ_E2E_EVENTS") (e2e-put-events))
    (setq e2e-progress nil e2e-run-done nil))

  ;; (d) The failing tests' diagnostics, from the real pytest plugin's report.
  (e2e-put 'pytest_red (e2e-pytest "red"))
  (e2e-wait 20 "the pytest diagnostics in Flymake" (lambda () (>= (length (e2e-pytest-diagnostics)) 2))
            #'flymake-start)
  (e2e-put 'diagnostics_red (vconcat (mapcar #'e2e-diagnostic-json (e2e-pytest-diagnostics))))

  ;; (c) M-x editseq-refine on the other failing function: a command with $/progress that does
  ;; not block Emacs; its answer comes to `editseq-run-finished-functions'.
  (e2e-goto-line (e2e-line "EDITSEQ_REFINE_LINE"))
  (let ((started (float-time)))
    (editseq-refine)
    (e2e-wait 60 "editseq-refine to finish" (lambda () e2e-run-done))
    (e2e-put 'refine_seconds (- (float-time) started)))
  (e2e-put 'refine_result (car e2e-run-done))
  (e2e-put 'refine_error (cdr e2e-run-done))
  (e2e-wait 10 "the refine's progress to end" (lambda () (e2e-progress-of "end")))
  (e2e-put 'refine_progress (vconcat (reverse e2e-progress)))
  (e2e-put 'pending_after_refine (length editseq--pending))
  ;; Eglot's own reporter for the token (what the mode line shows).
  (e2e-put 'progress_reporters (hash-table-count (eglot--progress-reporters (eglot-current-server))))

  ;; (b) Its steps as code actions: resolve the last (all steps) and let Eglot apply it.
  (let* ((actions (e2e-code-actions))
         (steps (cl-remove-if-not (lambda (a) (plist-get (plist-get a :data) :run)) actions)))
    (e2e-put 'step_titles (e2e-titles steps))
    (e2e-put 'step_preferred (vconcat (mapcar (lambda (a) (eq (plist-get a :isPreferred) t)) steps)))
    (when steps
      (e2e-put 'step_before (e2e-text))
      (e2e-put 'step_resolved (e2e-resolve-and-apply (car (last steps))))
      (e2e-put 'step_after (e2e-text))))

  ;; (b) The quick fix in the other diagnostic: the run happens inside codeAction/resolve.
  (e2e-goto-line (e2e-line "EDITSEQ_FIX_LINE"))
  (let ((actions (e2e-code-actions)) (started (float-time)))
    (e2e-put 'fix_titles (e2e-titles actions))
    (e2e-put 'fix_kinds (e2e-kinds actions))
    (e2e-put 'fix_before (e2e-text))
    (e2e-put 'fix_resolved (e2e-resolve-and-apply (e2e-action actions "^editseq: fix ")))
    (e2e-put 'fix_seconds (- (float-time) started))
    (e2e-put 'fix_after (e2e-text)))

  ;; (d) Saved and tested again: the report has no failure, the diagnostics clear.
  (save-buffer)
  (e2e-put 'pytest_green (e2e-pytest "green"))
  (e2e-wait 20 "the pytest diagnostics to clear" (lambda () (null (e2e-pytest-diagnostics))) #'flymake-start)
  (e2e-put 'diagnostics_green (vconcat (mapcar #'e2e-diagnostic-json (e2e-pytest-diagnostics))))
  (e2e-put 'saved (with-temp-buffer (insert-file-contents e2e-file) (buffer-string)))
  (e2e-put 'status (editseq-server-status (eglot-current-server)))

  (e2e-save)
  (let ((server (eglot-current-server)))
    (eglot-shutdown server)
    (e2e-put 'server_exited (not (jsonrpc-running-p server))))
  (e2e-save))

(condition-case err
    (e2e-main)
  (t (e2e-fail (error-message-string err))))
(kill-emacs 0)

;;; e2e.el ends here
