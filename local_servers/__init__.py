"""Stand-ins for the platforms the hotline talks to, for the tests, `hotline demo` and the
benchmarks: `telegram` speaks the Bot API with Telegram's checks and limits. `hotline run`
never imports them."""
