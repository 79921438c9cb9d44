"""A lean HTTP/1.1 server on ``httptools`` for the processes whose hot path is HTTP: the
router and the edge node (``httpfront.server``, requests and answer writers in
``httpfront.messages``)."""
