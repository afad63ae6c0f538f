"""Applications of the interpolant core beyond phi^4: images and maze planning."""
