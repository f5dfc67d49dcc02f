

def test_the_shared_names_are_string_enums_whose_values_are_the_stored_strings():
    from engine import CLASS_IDS
    from engine.core.choices import BackendName, ClassId, DeviceName
    from engine.inference.runtime import BACKENDS, resolve_backend

    assert CLASS_IDS == ("Benign", "Early", "Pre", "Pro") == tuple(ClassId)
    assert ClassId("Pre") is ClassId.PRE and f"{ClassId.PRO}" == "Pro"
    assert BACKENDS == ("auto", "onnx", "torch") and resolve_backend("torch", "cpu") is BackendName.TORCH
    assert tuple(DeviceName) == ("auto", "cpu", "cuda", "mps")
