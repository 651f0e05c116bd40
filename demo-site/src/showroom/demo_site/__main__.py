"""``python -m showroom.demo_site [--host H] [--port P]``: serve the demo sites until Ctrl-C."""

from showroom.demo_site.server import main

if __name__ == "__main__":
    main()
