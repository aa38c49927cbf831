"""Tests of the conformance suite itself (run only against the numpy backend)."""

#: The planted bugs of planted.py; each must make the suite fail.
BUGS = ("unrounded", "layouts_swapped", "off_by_one", "no_attention_factor", "float32_phase")
