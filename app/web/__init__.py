"""The learner's pages: rendering helper, security middleware, view models."""
