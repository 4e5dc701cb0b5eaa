"""gRPC servicers: validate bounds, translate, call one domain operation, translate back."""
