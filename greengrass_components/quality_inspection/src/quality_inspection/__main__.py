import sys

from quality_inspection.main import main

sys.exit(main())
