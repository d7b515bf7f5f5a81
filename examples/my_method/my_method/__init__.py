"""An example salbench plugin package: a saliency method (``attribution``), a metric (``metric``) and a
sanity check (``checks``).

Each lives in its own module, so that editing one reruns only the jobs that use it.
"""
