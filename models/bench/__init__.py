"""Pure parts of `breedwatch bench`: the equality checks and the arithmetic of its rates."""
