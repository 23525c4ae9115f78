-- What the console noticed by itself and told of once: a release milestone due or overdue, a
-- newest backup unproven for a day (`subject` names the event and what it is about).
CREATE TABLE notification_notices (
    subject TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
