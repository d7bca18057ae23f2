// Mail: see the issue that builds it.
