"""The WOR layer's protocol modules: Paxos-WOR and Chain-WOR, each refining ``spec/wor.py``,
with their symbolic (Z3) encodings beside them (``paxos_z3``, ``chain_z3``)."""
