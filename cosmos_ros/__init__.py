"""cosmos_ros: adapt the Cosmos Predict 2.5 video world model to robots and run it beside them."""

__version__ = "0.1.0"
