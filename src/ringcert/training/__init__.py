"""Training the DOUBLE-MNIST classifier with or without a defense, and evaluating it."""
