-- The dashboard's workload views list the rows an operator has to look at:
-- payments flagged for an operator and companies whose context failed, newest
-- first. Partial, so each holds only those rows, however many payments and
-- companies there are.
CREATE INDEX payments_flagged ON payments (id) WHERE needs_operator;
CREATE INDEX companies_context_failed ON companies (id) WHERE context_status = 'failed';
