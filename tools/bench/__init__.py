"""``make bench``: the export at scale against local stand-ins, with the figures printed.

Generates N profiles (eight mapped fields, realistic lengths) into the storage emulator as
Customer-Insights-style partitions, then measures:

1. a full export (the CLI, as a user runs it), its wall time per stage, its peak RSS and when in
   the run the peak came (sampled);
2. a delta export after 1% of the profiles changed;
3. the raw baseline: stream the same blobs and send pre-built payloads to the same simulator;
4. at SendGrid's pace (``tools/bench/paced.py``): 30,000 contacts at a scaled production pace,
   the wall time against its floor, the 429s and the requests per million contacts by kind;
5. the part of the memory that does not grow: the peak RSS of a full export of 100,000 profiles
   (enough for the send buffers to be all in use), so that what grows with the number of
   profiles can be given in MB per million.

The SendGrid simulator runs in its own process, so its work does not share the export's core.
Nothing leaves 127.0.0.1. Usage: ``python -m tools.bench [N]`` (default 1,000,000).

The rooms: ``data`` (the profiles and their variants), ``measure`` (the CLI in its own process,
its peak memory; the simulator and its request log), ``baseline``, ``report`` (the figures and
targets), ``paced`` and ``mirror`` (runnable alone too), ``__main__`` (the whole bench, in order).
"""
