"""Pure geography library: IP to location, the world model, the latency model, routing inputs.

- :mod:`geo.world`: the world file (regions, PoPs, simulated countries and their
  loopback blocks, latency parameters), loaded into a frozen :class:`~geo.world.World`.
- :mod:`geo.database`: the world as a MaxMind DB in the GeoIP2 City layout, cached by
  the world file's sha256.
- :mod:`geo.lookup`: :class:`~geo.lookup.GeoLocator`, IP to
  :class:`~geo.lookup.Location` through a stack of databases behind an LRU cache.
- :mod:`geo.latency`: modeled RTTs and one-way delays between countries, regions and
  coordinates (:mod:`geo.places` resolves their names), over the backbone or the great circle.
- :mod:`geo.backbone`, :mod:`geo.backbone_paths`: the simulated Internet's backbone (metro
  hubs, terrestrial and submarine links) and the shortest paths through it;
  :mod:`geo.backbone_fit` fits its constants to published RTTs.
- :mod:`geo.forwarding`: who the client is behind trusted proxies (``X-Forwarded-For``,
  ``Forwarded``), and which headers only the edge may set; shared by edge nodes and router.
- :mod:`geo.errors`: every error the library raises, under :class:`~geo.errors.GeoError`.
"""
