internal import CLibpq
