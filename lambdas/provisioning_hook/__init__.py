"""The fleet provisioning template's pre-provisioning hook: only allow-listed serials onboard."""
