"""The model-file contract and its adapters (FaceGraft ONNX, DeepFaceLab .dfm) and onnxruntime sessions."""
