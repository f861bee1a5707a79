"""The built-in demo and the synthetic handwritten notes it (and the tests and benchmarks) use.

Nothing here is ever a real client's note: the notes are generated from a
fixed vocabulary and rendered in handwriting fonts.
"""
