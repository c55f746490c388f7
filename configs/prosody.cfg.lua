-- Add to /etc/prosody/prosody.cfg.lua (or a file in conf.d/), one block per
-- transport domain Switchboard serves. The secret must match the
-- transport's `secret` in switchboard.toml.
component_ports = { 5347 }
component_interfaces = { "127.0.0.1" }

Component "irc.example.org"
    component_secret = "change-me"
    -- Let big IRC channels through: mod_limits throttles components too
    -- when it is loaded with tight limits.
