-- The bank's receipt of a payment (BNB QR Simple's `voucherId`), kept with
-- the movement it paid for, so a movement can be matched with the bank's
-- statement. NULL when the bank reports none (the simulator's own contract,
-- movements booked before this column, a row completed by hand).
ALTER TABLE account_movements ADD COLUMN voucher_id TEXT;
