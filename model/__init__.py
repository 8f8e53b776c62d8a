"""Protocol modules of each layer, written over the interface of the layer below."""
