"""``streamrec demo``: the whole pipeline on one machine (:mod:`streams.demo.run`)."""
