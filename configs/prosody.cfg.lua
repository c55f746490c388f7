-- Add to /etc/prosody/prosody.cfg.lua (or a file in conf.d/), one block per
-- transport domain Switchboard serves. The secret must match the
-- transport's `secret` in switchboard.toml.
component_ports = { 5347 }
component_interfaces = { "127.0.0.1" }

-- The email component: mod_privilege (Debian: prosody-modules; add its
-- directory to plugin_paths) lets it show mail a user sent from other mail
-- clients as their own messages (message "outgoing") and read the user's
-- XEP-0191 block list, so that blocked senders' mail is refused at SMTP
-- time (iq "get" on urn:xmpp:blocking). These are global settings: keep
-- them before the first Component line, and add "blocklist" and
-- "privilege" to the global modules_enabled.
privileged_entities = {
    ["mail.example.org"] = { message = "outgoing", iq = { ["urn:xmpp:blocking"] = "get" } };
}

Component "irc.example.org"
    component_secret = "change-me"
    -- Let big IRC channels through: mod_limits throttles components too
    -- when it is loaded with tight limits.

Component "mail.example.org"
    component_secret = "change-me"
    modules_enabled = { "privilege" }
