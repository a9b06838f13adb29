"""`breedwatch bench`: the pipeline against the naive way and the model-only bound, one module per part."""
