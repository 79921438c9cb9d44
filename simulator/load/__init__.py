"""The engine of ``edgecdn load``: simulated clients from many countries, and what they felt.

- ``plan``: pure decisions: traffic mixes, scenario phases, intended arrival times.
- ``client``: a lean keep-alive HTTP/1.1 client whose sockets leave from a country's
  loopback address, so the edge geolocates each client by its real source address.
- ``headers``: what an answer's head says: serving region, app version (``x-edge-app``,
  interned), other header values.
- ``recorder``: HDR histograms per country, per serving region and per second, answers
  per region per second, and answers by app version per country and per region per
  second; exact merge.
- ``engine``: drives the pools open loop (rate) or closed loop (concurrency).
- ``workers``: runs the engine in several processes and merges their recorders.
- ``events``: the world's faults and restarts during the run (its events file), for the
  report and the live view.
- ``report``, ``html``, ``charts``, ``progress``: the JSON report, the self-contained HTML
  page and its SVG charts (with event markers), the live view and the final tables;
  ``versions`` and ``version_chart``: the app versions' figures, and the chart of version
  share over time, one lane per region.
"""
