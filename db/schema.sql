-- Schema for message-service's own tests and local runs.
--
-- In production the main backend owns these tables and this service only
-- reads and writes `messages`. The three referenced tables are stubs with
-- UUID keys so that the foreign keys below behave as they do there.

CREATE TABLE conversations (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at TIMESTAMP DEFAULT NOW()
);

CREATE TABLE users (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name TEXT
);

CREATE TABLE contacts (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name TEXT
);

-- The seed's `messages` table, verbatim.
CREATE TABLE messages (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id UUID NOT NULL REFERENCES conversations(id),
    sender_id UUID REFERENCES users(id),
    contact_id UUID REFERENCES contacts(id),
    content TEXT NOT NULL,
    message_type VARCHAR(50) DEFAULT 'incoming',
    content_type VARCHAR(50) DEFAULT 'text',
    private BOOLEAN DEFAULT false,
    status VARCHAR(50) DEFAULT 'sent',
    source_id VARCHAR(255),
    created_at TIMESTAMP DEFAULT NOW(),
    updated_at TIMESTAMP DEFAULT NOW()
);

CREATE INDEX idx_messages_conversation ON messages(conversation_id);
CREATE INDEX idx_messages_created_at ON messages(created_at);

-- Keyset paging of a conversation orders by (created_at, id) and starts
-- after a cursor row: with this index each page is one index range scan of
-- `limit + 1` entries, however long the conversation. id breaks ties between
-- messages created in the same microsecond (a batch insert gives them all
-- the same now()).
CREATE INDEX idx_messages_conversation_created_id
    ON messages (conversation_id, created_at, id);
