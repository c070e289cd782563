"""The dashboard's areas, one module each: a `router` of pages and actions, and a `NAV`
entry when the area has a place in the top navigation."""
