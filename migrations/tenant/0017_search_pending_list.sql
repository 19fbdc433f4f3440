-- GIN gathers new entries in a pending list that every search reads whole, until the list
-- outgrows gin_pending_list_limit (4 MB by default) and the inserting transaction merges it.
-- With comments posted all day the list stayed hundreds of pages long: a search of a
-- two-character word in 57 groups took 6.9 ms with 276 pending pages and 2.9 ms without.
-- A 128 kB list keeps that read to a few pages; merges come more often and each is small
-- (the work of merging is the same in all, and batched it stays cheaper than fastupdate off).
ALTER INDEX search_docs_grams_group SET (gin_pending_list_limit = 128);
ALTER INDEX search_docs_patient_grams SET (gin_pending_list_limit = 128);
