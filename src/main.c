/* placeholder until the command lands */
int main(void)
{
    return 0;
}
