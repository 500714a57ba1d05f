from mes_gateway.cli import main

raise SystemExit(main())
