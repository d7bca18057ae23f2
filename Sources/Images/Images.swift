// Images: see the issue that builds it.
