"""Conformance suite: checks any backend against the NumPy reference.

    RROPE_BACKEND=torch pytest conformance                    # a built-in backend
    RROPE_BACKEND=my_pkg.my_backend pytest conformance        # an out-of-tree port
    RROPE_DEVICE=cuda RROPE_BACKEND=torch pytest conformance  # on a device
    HYPOTHESIS_PROFILE=nightly ...                            # the long run

See docs/porting.md.
"""
