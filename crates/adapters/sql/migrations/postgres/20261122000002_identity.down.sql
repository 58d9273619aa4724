DROP TABLE messages;
DROP TABLE refresh_tokens;
DROP TABLE users;
