-- migrations/V003__add_pipeline_results_table.sql

-- Create table for storing pipeline execution results
CREATE TABLE IF NOT EXISTS pipeline_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    input_data TEXT,  -- JSON
    output_data TEXT, -- JSON
    execution_time_ms INTEGER,
    status TEXT CHECK (status IN ('success', 'failed', 'partial')) DEFAULT 'success',
    error_message TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

-- Create indexes for performance
CREATE INDEX IF NOT EXISTS idx_pipeline_results_execution_id ON pipeline_results(execution_id);
CREATE INDEX IF NOT EXISTS idx_pipeline_results_pipeline_name ON pipeline_results(pipeline_name);
CREATE INDEX IF NOT EXISTS idx_pipeline_results_status ON pipeline_results(status);
CREATE INDEX IF NOT EXISTS idx_pipeline_results_created_at ON pipeline_results(created_at);

-- Create trigger for updated_at
CREATE TRIGGER IF NOT EXISTS update_pipeline_results_updated_at
    AFTER UPDATE ON pipeline_results
    FOR EACH ROW
    BEGIN
        UPDATE pipeline_results SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id;
    END;
