from daemon.app.cli import main

raise SystemExit(main())
