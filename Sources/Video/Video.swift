// Video: see the issue that builds it.
