from wav2kp.cli import main

raise SystemExit(main())
