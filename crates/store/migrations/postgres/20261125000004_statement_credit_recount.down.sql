-- techpack: back to recounting collection credits once per updated row.
DROP TRIGGER IF EXISTS tech_files_after_credits_change ON public.tech_files;
CREATE TRIGGER tech_files_after_credits_change AFTER UPDATE OF credits_used ON public.tech_files
    FOR EACH ROW WHEN (NEW.credits_used IS DISTINCT FROM OLD.credits_used)
    EXECUTE FUNCTION public.tech_files_after_credits_change();
DROP FUNCTION IF EXISTS public.tech_files_after_credits_change_statement();
