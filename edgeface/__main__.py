from edgeface.cli.main import main

raise SystemExit(main())
