"""The WOS / WormSpace layer: segments of write-once registers (``segments``), the plug that
drives a lower WOR model (``plug``), and the Z3 proof (``segments_z3``)."""
