DROP TABLE outbox; DROP TABLE contact_event;
