"""Breadth-first search bounded by disk, not memory: a compact fingerprint set, a frontier on
disk, parent pointers on disk, and checkpoints to resume an interrupted run.

The default search keeps a dict from fingerprint to parent (about 100 bytes per state in
CPython). This one keeps, in memory, only a sorted ``numpy`` array of 8-byte fingerprints (the
role of TLC's ``DiskFPSet``) and the candidates of the current level:

* the compiled loop (``expand.py``, ``batch`` variant) collects each level's successors not yet
  met in this level, ``fp -> (state, parent, action)``;
* when that batch is large, and at the end of the level, :meth:`CompactSearch.flush` looks the
  batch up in the sorted array in one vectorised ``searchsorted``, checks the invariants of the
  new states, merges their fingerprints into the array, appends ``(fp, parent)`` pairs to a
  parents file for traces and the new states to the next level's frontier files;
* each level's frontier is read back from disk in chunks, each with its fingerprints.

Memory is 8 bytes per distinct state plus constants: the fingerprint set is a few sorted runs
(:class:`FingerprintSet`, merged like a binary counter, none above ``RUN_MAX``, so a merge never
copies the whole set); the batch holds at most ``BATCH_LIMIT`` candidates; the known
fingerprints pre-loaded into the batch (those of the current and previous level, which most
successors hit) are capped at ``PREFILL``; frontier chunks hold ``CHUNK`` states. Nothing else
grows with the state space or with the width of a level.

New states are taken in the order they were first generated, so the counts (distinct,
generated, depth) and the per-action coverage are those of the default search, and a violation
is still found at the shortest depth.

Checkpoints: at a level boundary, at most every ``checkpoint_minutes``, the array, the counters
and the list of frontier and parent files are written to ``DIR/checkpoint.json`` (atomically,
by rename). ``recover`` resumes from it and ends with the same counts as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .expand import Found
from .model import ModelError
from .result import INVARIANT, OK

if TYPE_CHECKING:
    from .explore import _Explorer

#: Candidates gathered before a flush (bounds the memory of one level's batch).
BATCH_LIMIT = 1 << 13
#: Known fingerprints of the current and previous level pre-loaded into each batch (at most).
PREFILL = 1 << 14
#: States per frontier file.
CHUNK = 1 << 12
#: Largest sorted run of the fingerprint set (4 MB): bounds the temporary copy of a merge.
RUN_MAX = 1 << 19
MANIFEST = "checkpoint.json"
_FORMAT = 2


class FingerprintSet:
    """A set of 64-bit fingerprints as sorted ``int64`` runs: 8 bytes per element.

    New fingerprints come in sorted, disjoint batches (:meth:`add`). Runs are merged like a
    binary counter (a new run swallows the last one while that one is not more than twice its
    size), so each fingerprint is copied O(log n) times in all, and no run grows past
    ``RUN_MAX``: a merge's temporary copy is bounded, not the size of the whole set.
    """

    def __init__(self, runs: list[Any] | None = None) -> None:
        self.runs: list[Any] = runs or []
        self.size = sum(len(r) for r in self.runs)

    def __len__(self) -> int:
        return self.size

    def fresh(self, keys: Any) -> Any:
        """The elements of ``keys`` (an int64 array) not in the set, in their order."""
        mask = np.ones(len(keys), dtype=bool)
        for run in self.runs:
            pos = np.searchsorted(run, keys)
            pos[pos == len(run)] = 0
            mask &= run[pos] != keys
        return keys[mask]

    def add(self, new: Any) -> None:
        """Add ``new``: sorted, without duplicates, and disjoint from the set."""
        if not len(new):
            return
        self.size += len(new)
        run = new
        while (self.runs and len(self.runs[-1]) <= 2 * len(run)
               and len(self.runs[-1]) + len(run) <= RUN_MAX):
            run = _merge(self.runs.pop(), run)
        self.runs.append(run)


def _merge(a: Any, b: Any) -> Any:
    """Two sorted, disjoint int64 arrays as one sorted array (one allocation)."""
    out = np.empty(len(a) + len(b), dtype=np.int64)
    at = np.searchsorted(a, b) + np.arange(len(b))
    keep = np.ones(len(out), dtype=bool)
    keep[at] = False
    out[at] = b
    out[keep] = a
    return out


class CompactSearch:
    """The compact, disk-backed search; ``search(t0)`` as the explorer's other searches."""

    def __init__(self, explorer: _Explorer, directory: Path, *,
                 checkpoint_minutes: float | None = None, recover: bool = False,
                 batch_limit: int | None = None) -> None:
        self.ex = explorer
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_seconds = checkpoint_minutes * 60 if checkpoint_minutes else None
        self.recover = recover
        self.batch_limit = batch_limit if batch_limit is not None else BATCH_LIMIT
        self.fps = FingerprintSet()
        self.parent_files: list[str] = []
        self.out_files: list[str] = []
        self.out_buffer: list[Any] = []
        self.out_fps: list[int] = []
        self.level_index = 0
        self.new_in_level = 0
        self.file_counter = 0
        self.known_in_batch = 0
        self.limit = [self.batch_limit]

    # -- the search ---------------------------------------------------------------------------

    def search(self, t0: float) -> None:
        """Explore; fill in the explorer's result, or raise its ``_Stop``."""
        from .explore import Progress, _Stop

        ex, res = self.ex, self.ex.result
        ex.parent_of = self.parent_of
        if self.recover:
            state = self._load()
            frontier_files = state["frontier"]
            levels, depth, generated = state["levels"], state["depth"], state["generated"]
        else:
            self._check_empty()
            frontier, fps = ex.initial()
            self.fps = FingerprintSet()
            self.fps.add(np.array(sorted(fps), dtype=np.int64))
            self._write_parents(np.array(fps, dtype=np.int64),
                                np.zeros(len(fps), dtype=np.int64), roots=True)
            self.level_index = 1
            frontier_files = self._write_frontier(frontier, fps)
            levels, depth, generated = [len(frontier)], (1 if frontier else 0), res.generated
            ex.seen.clear()
        last_checkpoint = time.perf_counter()
        last_progress = t0
        # The loop flushes when the batch reaches limit[0]; each flush moves the limit on.
        self.limit = [self.batch_limit]
        expand = ex.make_expand(None, batch=(self.limit, self.flush))
        previous: list[int] = []
        while frontier_files:
            self.level_index = depth + 1
            self.out_files, self.out_buffer, self.out_fps, self.new_in_level = [], [], [], 0
            # Most successors lead back into this level or the previous one (self-loops,
            # commuting steps): mark (up to PREFILL of) those as known so they never enter the
            # batch. Any others are weeded out by the flush, against the fingerprint set.
            current = self._level_prefix(frontier_files, PREFILL)
            batch: dict[int, Any] = dict.fromkeys(previous[:max(0, PREFILL - len(current))])
            batch.update(dict.fromkeys(current))
            self.known_in_batch = len(batch)
            self.limit[0] = len(batch) + self.batch_limit
            try:
                for states, fps_here in self._read_frontier(frontier_files):
                    generated = expand(states, fps_here, batch, generated, [], [],
                                       ex.cov_distinct, ex.cov_generated)
                self.flush(batch)
            except Found as found:
                res.generated, res.depth, res.levels = found.generated, depth, levels
                raise ex._stop(found, 0) from None
            except _Stop:
                res.generated, res.depth, res.levels = generated, depth, levels
                raise
            except ModelError:
                raise
            except Exception as exc:
                raise ex.located_error(exc) from exc
            self._flush_out()
            previous = current
            if not self.checkpoint_seconds:
                self._remove(frontier_files)
            frontier_files = self.out_files
            if self.new_in_level:
                depth += 1
                levels.append(self.new_in_level)
            res.generated, res.depth, res.levels = generated, depth, levels
            res.distinct = len(self.fps)
            now = time.perf_counter()
            if self.checkpoint_seconds and now - last_checkpoint >= self.checkpoint_seconds:
                self._save(frontier_files, levels, depth, generated)
                last_checkpoint = now
            if ex.progress is not None and now - last_progress >= ex.progress_interval:
                last_progress = now
                ex.progress(Progress(now - t0, depth, generated, len(self.fps),
                                     self.new_in_level))
        res.generated, res.depth, res.levels = generated, depth, levels
        res.distinct = len(self.fps)
        res.left_on_queue = 0
        res.result = OK

    def flush(self, batch: dict[int, Any]) -> None:
        """Sort this batch of candidates into old and new; store and check the new ones."""
        from .explore import _Stop

        if len(batch) <= self.known_in_batch:
            return
        # The first entries are the known fingerprints of this and the previous level (value
        # None); the candidates follow, in the order they were generated.
        items = list(batch.items())[self.known_in_batch:]
        keys = np.fromiter((fp for fp, _ in items), dtype=np.int64, count=len(items))
        fresh = self.fps.fresh(keys)
        ex = self.ex
        bounded = ex.model.has_bounds()
        within = ex.model.within_bounds
        invariants = ex.invariants
        cov_d = ex.cov_distinct
        stored: list[int] = []
        parents: list[int] = []
        out, out_fps = self.out_buffer, self.out_fps
        for fp in fresh.tolist():
            t, parent, ai = batch[fp]
            in_model = not bounded or within(t)
            for name, inv in invariants:
                if not inv(t):
                    raise _Stop(INVARIANT, name, parent, t, f"Invariant {name} is violated.")
            if not in_model:
                continue
            stored.append(fp)
            parents.append(parent)
            cov_d[ai] += 1
            if ex.budget[0]:
                ex.budget[0] -= 1
                ex._validate(t, ex.actions[ai])
            out.append(t)
            out_fps.append(fp)
            if len(out) >= CHUNK:
                self._flush_out()
                out, out_fps = self.out_buffer, self.out_fps  # fresh lists: the full ones went to disk
        # The candidates were looked up: forget them (their states above all). Fingerprints
        # met again later in this level are weeded out by the next flush.
        del items
        known = list(batch)[:self.known_in_batch]
        batch.clear()
        batch.update(dict.fromkeys(known))
        self.limit[0] = len(batch) + self.batch_limit
        if stored:
            new = np.array(stored, dtype=np.int64)
            self._write_parents(new, np.array(parents, dtype=np.int64), roots=False)
            new.sort()
            self.fps.add(new)
            self.new_in_level += len(stored)

    # -- traces -------------------------------------------------------------------------------

    def parent_of(self, fp: int) -> int | None:
        """The parent of a stored state, from the parents files (newest first)."""
        for name in reversed(self.parent_files):
            data = np.load(self.dir / name)
            hits = np.nonzero(data[0] == fp)[0]
            if len(hits):
                if name.startswith("roots"):
                    return None
                return int(data[1][hits[0]])
        raise ModelError(f"fingerprint {fp} is in no parents file under {self.dir}")

    # -- files --------------------------------------------------------------------------------

    def _name(self, kind: str) -> str:
        self.file_counter += 1
        return f"{kind}-{self.level_index:05d}-{self.file_counter:06d}"

    def _write_parents(self, fps: Any, parents: Any, *, roots: bool) -> None:
        name = self._name("roots" if roots else "parents") + ".npy"
        np.save(self.dir / name, np.stack([fps, parents]))
        self.parent_files.append(name)

    def _write_frontier(self, states: list[Any], fps: list[int]) -> list[str]:
        self.out_files, self.out_buffer, self.out_fps = [], list(states), list(fps)
        self._flush_out()
        return self.out_files

    def _flush_out(self) -> None:
        if not self.out_buffer:
            return
        name = self._name("frontier") + ".pickle"
        with open(self.dir / name, "wb") as f:
            pickle.dump((self.out_buffer, np.array(self.out_fps, dtype=np.int64)), f,
                        protocol=pickle.HIGHEST_PROTOCOL)
        self.out_files.append(name)
        self.out_buffer, self.out_fps = [], []

    def _read_frontier(self, names: list[str]) -> Iterator[tuple[list[Any], list[int]]]:
        """Each frontier file's states and their fingerprints."""
        for name in names:
            with open(self.dir / name, "rb") as f:
                states, fps = pickle.load(f)  # our own files, written by _flush_out
            yield states, fps.tolist()

    def _level_prefix(self, names: list[str], limit: int) -> list[int]:
        """The fingerprints of the first ``limit`` states of a level (its files, in order)."""
        out: list[int] = []
        for _states, fps in self._read_frontier(names):
            out.extend(fps[:limit - len(out)])
            if len(out) >= limit:
                break
        return out

    def _remove(self, names: list[str]) -> None:
        for name in names:
            (self.dir / name).unlink(missing_ok=True)

    def _check_empty(self) -> None:
        if (self.dir / MANIFEST).exists():
            raise ModelError(f"{self.dir} holds a checkpoint; resume it with --recover {self.dir} "
                             "or choose an empty directory")

    # -- checkpoints --------------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        ex = self.ex
        return {"model": ex.model.name, "params": {k: repr(v) for k, v in ex.model.params.items()},
                "symmetry": ex.symmetry, "deadlock": ex.deadlock,
                "refinement": ex.refinement.spec.name if ex.refinement else None,
                "invariants": [n for n, _ in ex.invariants]}

    def _save(self, frontier: list[str], levels: list[int], depth: int, generated: int) -> None:
        runs = []
        for run in self.fps.runs:  # a run's content never changes: name it by size and ends
            name = f"fingerprints-{len(run)}-{int(run[0])}-{int(run[-1])}.npy"
            if not (self.dir / name).exists():
                np.save(self.dir / ("tmp-" + name), run)
                os.replace(self.dir / ("tmp-" + name), self.dir / name)
            runs.append(name)
        ex = self.ex
        doc = {
            "format": _FORMAT, "identity": self._identity(), "frontier": frontier,
            "fingerprints": runs,
            "levels": levels, "depth": depth, "generated": generated,
            "parents": self.parent_files, "coverage": [ex.cov_distinct, ex.cov_generated],
            "budget": ex.budget[0], "file_counter": self.file_counter,
            "saved": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        tmp = self.dir / (MANIFEST + ".tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        old = json.loads((self.dir / MANIFEST).read_text()) if (self.dir / MANIFEST).exists() else None
        os.replace(tmp, self.dir / MANIFEST)
        if old is not None:  # the previous checkpoint's frontier and runs are no longer needed
            self._remove([n for n in old["frontier"] + old["fingerprints"]
                          if n not in frontier and n not in runs])

    def _load(self) -> dict[str, Any]:
        path = self.dir / MANIFEST
        if not path.exists():
            raise ModelError(f"no checkpoint in {self.dir} (expected {MANIFEST})")
        try:
            doc: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"the checkpoint {path} is unreadable: {exc}") from exc
        if doc.get("format") != _FORMAT:
            raise ModelError(f"the checkpoint {path} has an unknown format")
        if doc["identity"] != self._identity():
            raise ModelError(f"the checkpoint in {self.dir} is of another run: "
                             f"{doc['identity']} (this run: {self._identity()})")
        self.fps = FingerprintSet([np.load(self.dir / n) for n in doc["fingerprints"]])
        self.parent_files = list(doc["parents"])
        self.file_counter = int(doc["file_counter"])
        ex = self.ex
        ex.cov_distinct[:], ex.cov_generated[:] = doc["coverage"]
        ex.budget[0] = int(doc["budget"])
        ex.result.generated = int(doc["generated"])
        # Files written after the checkpoint belong to the interrupted level: drop them.
        keep = set(doc["frontier"]) | set(self.parent_files) | set(doc["fingerprints"]) | {MANIFEST}
        for p in self.dir.iterdir():
            if p.name not in keep:
                p.unlink()
        return doc
