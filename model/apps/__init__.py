"""The application layer: WormPaxos, WormLog and WormTX, each over the atomic WOS interface
(``space`` is that interface in the one-step-per-operation form the models use)."""
