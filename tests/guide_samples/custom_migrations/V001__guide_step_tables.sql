-- The tables the guide's DatabaseWriterStep and PersistentAnalysisStep write to (the guide does not show them).

CREATE TABLE IF NOT EXISTS processed_data (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    content TEXT,
    metadata TEXT,
    processed_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS analysis_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT,
    step_name TEXT NOT NULL,
    input_summary TEXT,
    analysis_data TEXT NOT NULL,
    confidence_score REAL,
    created_at TIMESTAMP
);
