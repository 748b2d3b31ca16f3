"""Language runtimes: directories of files a job sees read-only, installed from a recipe.

`spec` and `manifest` are pure (names and recipes parsed into frozen dataclasses),
`archive` unpacks untrusted files safely, `store` owns the installed runtimes on disk and
joins them to jobs as an `Attachment`, and `installer` builds a runtime by running its
setup script as an ordinary sandboxed job.
"""
