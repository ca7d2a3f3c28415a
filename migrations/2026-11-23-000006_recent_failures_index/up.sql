-- A user's recent failures (the risk signal read at every sign-in and step-up) by the user, not
-- by time: through the time index alone, each read scanned every event of the window, everyone's.
-- Partial: only failures are indexed, so the success rows every sign-in writes cost nothing more.
CREATE INDEX audit_events_user_failures ON audit_events(user_id, at) WHERE outcome = 'failure';
