import sys

from data_collector.main import main

sys.exit(main())
