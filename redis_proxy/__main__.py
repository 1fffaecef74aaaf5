from redis_proxy.cli import main

raise SystemExit(main())
