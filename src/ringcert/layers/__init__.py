"""The supported layer vocabulary: one module per layer type, each owning everything about
it (parameter check, model-file spec, ONNX node, MILP matrix, bound propagation rules).

``base.LayerType`` is the interface, ``registry`` finds the type of a torch layer, a spec op
name or an ONNX op type. This package imports neither ``ringcert.models`` nor
``ringcert.verify``; both import it.
"""
