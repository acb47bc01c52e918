"""What hub, spoke and bridge all speak: enums, event names, wire schemas, errors, the clock."""
